import { suite } from 'uvu';
import { type DatapathMaps, MemoryMaps } from '../../../src/datapath/maps.ts';
import { CONTRACT_CAPACITY, datapathMapsContract } from '../../contract/datapath-maps.ts';

const memory = suite<{ maps: DatapathMaps }>('MemoryMaps contract');
memory.before.each((ctx) => {
  ctx.maps = new MemoryMaps(CONTRACT_CAPACITY);
});
datapathMapsContract(memory);
memory.run();
